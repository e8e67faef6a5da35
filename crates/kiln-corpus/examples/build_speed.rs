//! Scratch: time `pipeline::build` on one input (default config, no decontamination).
use kiln_corpus::pipeline::{build, BuildPlan};
use kiln_corpus::CorpusConfig;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = std::path::PathBuf::from(&args[2]);
    let _ = std::fs::remove_dir_all(&out);
    let mut cfg = CorpusConfig::default();
    if std::env::var_os("NOSCREEN").is_some() { cfg.quality_screen = false; }
    let plan = BuildPlan::new(vec![args[1].clone().into()], out, cfg, None, None).unwrap();
    let t = std::time::Instant::now();
    let m = build(&plan, None).unwrap().manifest;
    let s = t.elapsed().as_secs_f64();
    eprintln!("{:.3} s, {:.1} MB/s, {} samples kept", s, m.files.bytes_ingested as f64 / 1e6 / s, m.samples.kept);
}
