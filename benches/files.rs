//! Filesystem side: how many new files a second the watcher turns into events (real
//! inotify, debounce 50 ms), and the PHI sampler's throughput on a CSV export.
//!
//! `cargo bench --bench files`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use phiwatch::config::SourceConfig;
use phiwatch::phi::Sampler;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

fn watcher(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cfg: SourceConfig = toml::from_str(&format!(
        "name = \"usb\"\ntype = \"fswatch\"\npaths = [{:?}]\nmedia = \"removable\"\ndebounce_ms = 50\nphi_sample_bytes = 0\n",
        dir.path().to_string_lossy()
    ))
    .unwrap();
    let (tx, rx) = channel();
    let _w =
        phiwatch::source::fswatch::start(&cfg, Box::new(move |evs| tx.send(evs.len()).is_ok()))
            .unwrap();
    const N: usize = 1000;
    let mut g = c.benchmark_group("fswatch");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    let mut round = 0;
    g.bench_function("1000 new files to events", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let start = Instant::now();
                for i in 0..N {
                    std::fs::write(dir.path().join(format!("r{round}-{i}.txt")), b"x").unwrap();
                }
                let mut got = 0;
                while got < N {
                    got += rx.recv_timeout(Duration::from_secs(30)).unwrap();
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn sampler(c: &mut Criterion) {
    let mut csv = String::from("MRN,Patient Name,DOB,Diagnosis,Address\n");
    let mut i = 0;
    while csv.len() < 64 * 1024 {
        csv.push_str(&format!(
            "MRN{:07},Doe {i},1970-01-01,I10,{i} Elm St\n",
            1_000_000 + i
        ));
        i += 1;
    }
    let s = Sampler::with_defaults();
    let mut g = c.benchmark_group("phi");
    g.throughput(Throughput::Bytes(csv.len() as u64));
    g.bench_function("sample 64 KiB CSV", |b| {
        b.iter(|| s.sample_bytes(csv.as_bytes(), csv.len() as u64))
    });
    g.finish();
}

criterion_group!(benches, watcher, sampler);
criterion_main!(benches);
