//! Every line of the README's tested example block (the code block after the
//! `<!-- tested by tests/suite/readme.rs -->` marker) runs as written from the repository root and
//! succeeds: `aimc` is this build's binary, `experiments/` the repository's, results go to a
//! scratch directory. And the experiment-file example of "## Experiment files", saved as a file,
//! passes `aimc check`.

use std::path::PathBuf;
use std::process::Command;

/// The first `fence` code block of the README after `marker`.
fn readme_block(marker: &str, fence: &str) -> String {
    let readme = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = readme.split(marker).nth(1).unwrap_or_else(|| panic!("the README has {marker:?}"));
    after.split(fence).nth(1).and_then(|b| b.split("```").next()).unwrap_or_else(|| panic!("a {fence} block follows {marker:?}")).to_string()
}

#[test]
fn the_readme_examples_run_as_written() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let block = readme_block("<!-- tested by tests/suite/readme.rs -->", "```sh");
    let lines: Vec<&str> = block.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert!(lines.len() >= 8, "the tested block should show the commands: {lines:?}");
    // A scratch working directory that sees the repository's experiments/ as its own.
    let dir = std::env::temp_dir().join(format!("aimc-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(root.join("experiments"), dir.join("experiments")).unwrap();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], "aimc", "a tested example starts with aimc: {line}");
        let out = Command::new(env!("CARGO_BIN_EXE_aimc")).args(&words[1..]).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "README example failed: {line}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    for d in ["smoke", "smoke-8bit", "smoke-merged", "weights", "mlp", "moe_digits"] {
        assert!(dir.join("results").join(d).join("report.md").exists(), "results/{d} has its report");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README's annotated experiment file is a valid one as it stands: its optional sections are
/// commented out header and all, and its paths resolve beside the shipped models and data.
#[test]
fn the_readme_experiment_file_checks() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let block = readme_block("\n## Experiment files\n", "```toml");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("readme-experiment");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for sub in ["models", "data"] {
        std::os::unix::fs::symlink(root.join("experiments").join(sub), dir.join(sub)).unwrap();
    }
    let file = dir.join("example.toml");
    std::fs::write(&file, block).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aimc")).args(["check", file.to_str().unwrap(), "--backend", "cpu"]).output().unwrap();
    assert!(out.status.success(), "the README's experiment file fails aimc check:\n{}", String::from_utf8_lossy(&out.stderr));
}
