//! Writes every target's seeds, made by the real encoders, to `fuzz/corpus/<target>/<seed>`
//! (replacing what is there under the same names; other files are left alone):
//!
//! ```sh
//! cargo run -p fuzz-targets --example write_corpus
//! ```

use std::path::Path;

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for target in fuzz_targets::TARGETS {
        let directory = corpus.join(target.name);
        std::fs::create_dir_all(&directory)?;
        let seeds = (target.seeds)();
        for (name, input) in &seeds {
            std::fs::write(directory.join(name), input)?;
        }
        println!("{}: {} seeds", target.name, seeds.len());
    }
    Ok(())
}
