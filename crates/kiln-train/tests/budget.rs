//! Training to a time budget (kiln_train::budget): the calibration sizes a run and cleans up,
//! and a run planned far too long is re-planned from its real pace and ends near its deadline.
use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::Device;
use kiln_data::megatron::{DType as TokenType, MegatronWriter};
use kiln_train::trainer::Quiet;
mod common;
use common::{config, small_model};
use kiln_train::{calibrate_steps, train_to_deadline, Replan, Trainer};

/// Packed windows of 17 tokens.
fn packed_data(dir: &Path, windows: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut w = MegatronWriter::create(&dir.join("train"), TokenType::U16).unwrap();
    for i in 0..windows {
        let ids: Vec<u32> = (0..17).map(|j| 2 + ((i + j) % 16) as u32).collect();
        w.add_document(&ids).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn a_run_planned_too_long_is_replanned_and_ends_near_its_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    small_model(&tmp.path().join("init"));
    packed_data(&tmp.path().join("data"), 64);

    // The calibration sizes the run and leaves nothing behind.
    let budget = Duration::from_secs(2);
    let scratch = tmp.path().join("calibration");
    let fits = calibrate_steps(&config(tmp.path(), 100), &scratch, &Device::Cpu, budget.as_secs_f64()).unwrap().unwrap();
    assert!(fits >= 20, "{fits} steps in {budget:?}");
    assert!(!scratch.exists(), "the calibration run is removed");

    // Planned five times too long: re-planned after the first tenth, before the decay.
    let planned = fits * 5;
    let run = tmp.path().join("run");
    let mut trainer = Trainer::create(&run, config(tmp.path(), planned), &Device::Cpu).unwrap();
    let started = Instant::now();
    let mut replans: Vec<Replan> = Vec::new();
    let state = train_to_deadline(&mut trainer, started + budget, &Quiet, &mut |r| replans.push(*r)).unwrap();
    let took = started.elapsed();
    assert_eq!(replans.len(), 1, "{replans:?}");
    let r = replans[0];
    assert_eq!(r.planned, planned);
    assert!(r.steps < planned && r.steps > planned / 10, "{r:?}");
    assert!(r.seconds_per_step > 0.0);
    assert_eq!(state.step, r.steps, "the run ends at its new plan");
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved["steps"].as_u64().unwrap() as usize, r.steps, "a resume keeps the new plan");
    // The whole plan would take about five budgets; the re-planned run about one (slack for a
    // busy machine).
    assert!(took < budget * 5 / 2, "took {took:?} for a budget of {budget:?}");
}
