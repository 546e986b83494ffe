//! Engine throughput: a simulated hospital's events, parsed once, pushed through the
//! engine (enrichment, every shipped detector, findings) as `replay` does.
//!
//! `cargo bench --bench engine`

/// The binary's allocator (see src/main.rs), so the figures are what `phiwatch` gets.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use phiwatch::config::Config;
use phiwatch::deadletter::DeadLetter;
use phiwatch::engine::Engine;
use phiwatch::event::Event;
use phiwatch::ingest::history::History;
use phiwatch::simulate::{simulate, SimOptions};

/// Every event of the simulated files, decoded once, in the engine's total order.
fn events(cfg: &Config) -> Vec<Event> {
    let mut dl = DeadLetter::new(&cfg.dead_letter_path());
    let mut history = History::open(cfg, &mut dl).unwrap();
    let mut all = Vec::new();
    while let Some(e) = history.next_event(&mut dl).unwrap() {
        all.push(*e);
    }
    all
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let opts = SimOptions {
        seed: 7,
        staff: 200,
        days: 14,
        ..Default::default()
    };
    simulate(&opts, dir.path()).unwrap();
    let cfg = Config::load(&dir.path().join("phiwatch.toml")).unwrap();
    let evs = events(&cfg);
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(evs.len() as u64));
    g.sample_size(10);
    g.bench_function(format!("{} events, 200 staff, 14 days", evs.len()), |b| {
        b.iter(|| {
            let mut engine = Engine::from_config(&cfg).unwrap();
            engine.set_merged_input();
            let mut out = Vec::new();
            for e in &evs {
                engine.push(e.clone(), &mut out);
            }
            engine.flush(&mut out);
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
