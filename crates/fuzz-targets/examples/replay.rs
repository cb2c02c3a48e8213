//! Runs files through one target on stable Rust, e.g. a crash input libFuzzer saved:
//!
//! ```sh
//! cargo run -p fuzz-targets --example replay -- wal_segment fuzz/artifacts/wal_segment/crash-...
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, files)) = arguments.split_first() else {
        eprintln!("usage: replay TARGET FILE...");
        return ExitCode::FAILURE;
    };
    let Some(target) = fuzz_targets::target(name) else {
        let names: Vec<&str> = fuzz_targets::TARGETS
            .iter()
            .map(|target| target.name)
            .collect();
        eprintln!("no target {name}; the targets: {}", names.join(" "));
        return ExitCode::FAILURE;
    };
    for file in files {
        let input = match std::fs::read(file) {
            Ok(input) => input,
            Err(error) => {
                eprintln!("cannot read {file}: {error}");
                return ExitCode::FAILURE;
            }
        };
        (target.run)(&input);
        println!("{file}: passed");
    }
    ExitCode::SUCCESS
}
