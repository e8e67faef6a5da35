//! The machine a figure was measured on, in words, for reports.

/// The CPU as `/proc/cpuinfo` names it (the architecture elsewhere) and the cores in use:
/// `AMD EPYC, 2 cores, no GPU used`.
pub fn describe() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {cores} cores, no GPU used")
}
