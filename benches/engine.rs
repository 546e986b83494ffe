//! Engine throughput: a simulated hospital's events, parsed once, pushed through the
//! engine (enrichment, every shipped detector, findings) as `replay` does.
//!
//! `cargo bench --bench engine`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use phiwatch::config::Config;
use phiwatch::engine;
use phiwatch::event::Event;
use phiwatch::pipeline::lines::FileLines;
use phiwatch::pipeline::replay::{build_engine, expand};
use phiwatch::simulate::{simulate, SimOptions};

fn events(cfg: &Config) -> Vec<Event> {
    let tz = cfg.timezone().unwrap();
    let mut all = Vec::new();
    for s in &cfg.sources {
        for path in expand(&s.paths).unwrap() {
            let mut parser = phiwatch::parse::build(s, tz).unwrap();
            for line in FileLines::open(&path).unwrap() {
                if let Ok(Some(mut e)) = parser.parse(&line.unwrap().text) {
                    e.source = s.name.clone();
                    all.push(e);
                }
            }
        }
    }
    all.sort_by(engine::order);
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
            let mut engine = build_engine(&cfg).unwrap();
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
