//! Helpers shared by the end-to-end tests of the `lockstep` binary: running
//! it, reading its output, and checking the error contract (one line on
//! stderr starting with `lockstep: `, exit 1 for failures, 2 for usage).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub const BINARY: &str = env!("CARGO_BIN_EXE_lockstep");

pub fn lockstep(args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .output()
        .expect("the lockstep binary runs")
}

pub fn path_arg(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

pub fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed with {:?}: {}",
        output.status,
        stderr_of(output)
    );
}

/// Checks the error contract and returns the one line.
pub fn single_error_line(output: &Output, exit_code: i32) -> String {
    assert_eq!(
        output.status.code(),
        Some(exit_code),
        "stdout: {} stderr: {}",
        stdout_of(output),
        stderr_of(output)
    );
    let stderr = stderr_of(output);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr is not one line: {stderr:?}");
    assert!(lines[0].starts_with("lockstep: "), "{stderr:?}");
    lines[0].to_string()
}

/// The one JSON object a successful `--json` run prints.
pub fn json_of(output: &Output, what: &str) -> serde_json::Value {
    assert_success(output, what);
    serde_json::from_str(&stdout_of(output)).expect("--json prints one JSON object")
}
