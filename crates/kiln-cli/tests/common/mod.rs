//! Running the `kiln` binary from the CLI tests.
#![allow(dead_code)] // each test crate uses its own subset

use std::process::{Command, Output};

/// Runs the `kiln` binary built for these tests.
pub fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).output().expect("kiln runs")
}

/// Stdout of a run that must succeed (else the test fails with kiln's stderr).
pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "kiln failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}
