//! The Python extension module `aimc._aimc`: one entry point into the same pipeline as the CLI
//! (`aimc::run::pipeline::run_to_dir`), taking an experiment document as TOML text. The Python side
//! (python/pysrc/aimc) builds documents from paths, dicts and NumPy arrays and wraps the results.

use aimc::config::Experiment;
use aimc::run::pipeline::BackendChoice;
use aimc::run::Progress;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::{Path, PathBuf};

/// Progress on stderr, a line every 10 % (notebooks capture stderr); after each checkpoint chunk
/// it lets Python handle pending signals, so an interrupt (Ctrl-C, a notebook's stop) ends the run
/// there, its finished chunks journaled.
struct Lines {
    total: u64,
    done: u64,
    next: u64,
    quiet: bool,
    interrupt: Option<PyErr>,
}

impl Progress for Lines {
    fn start(&mut self, total: u64) {
        self.total = total;
        self.next = total.div_ceil(10);
    }
    fn advance(&mut self, n: u64) {
        self.done += n;
        if !self.quiet && self.done >= self.next && self.done < self.total {
            eprintln!("aimc: {}/{} trials ({:.0} %)", self.done, self.total, 100.0 * self.done as f64 / self.total as f64);
            self.next += self.total.div_ceil(10);
        }
    }
    fn finish(&mut self) {}
    fn interrupted(&mut self) -> bool {
        if self.interrupt.is_none() {
            self.interrupt = Python::with_gil(|py| py.check_signals().err());
        }
        self.interrupt.is_some()
    }
}

/// Runs the experiment document `text` (relative paths resolve from `path`'s directory) on
/// `backend` ("auto", "gpu" or "cpu") into `out` (default results/NAME) and returns
/// (results.json text, the results directory). `overwrite` replaces the results of a different
/// configuration in `out` (as `aimc run --overwrite`); without it they are kept and the run
/// refused. `base` sets fields as if the document held them (`rpu_config=`: sweep axes still vary
/// them), before `sets`, which act as `aimc run --set`. `need_ranges` (an rpu_config that learns
/// input ranges) refuses a model without any before the run. Errors are ValueErrors with the
/// CLI's messages.
#[pyfunction]
#[pyo3(signature = (text, path, backend = "auto", out = None, trials = None, quiet = false, overwrite = false, sets = None, base = None, need_ranges = false))]
#[allow(clippy::too_many_arguments)]
fn run_toml(
    py: Python<'_>,
    text: &str,
    path: &str,
    backend: &str,
    out: Option<&str>,
    trials: Option<u32>,
    quiet: bool,
    overwrite: bool,
    sets: Option<Vec<String>>,
    base: Option<Vec<String>>,
    need_ranges: bool,
) -> PyResult<(String, String)> {
    let err = |e: String| PyValueError::new_err(e);
    let sets = sets.unwrap_or_default();
    let text = aimc::config::overrides::with_base(text, Path::new(path), &base.unwrap_or_default()).map_err(|e| err(e.to_string()))?;
    let exp = Experiment::from_text_with_trials(&text, Path::new(path), &sets, trials).map_err(|e| err(e.to_string()))?;
    if need_ranges && !exp.holds_input_ranges() {
        return Err(err(format!(
            "{path}: the rpu_config's pre_post.input_range is enabled, but the model holds no input ranges: aihwkit clips each layer's inputs to its learned range; give the trained analog model's file (PREFIX.input_range beside each weight, as aimc.from_torch or aimc.torch write it), or disable pre_post.input_range"
        )));
    }
    let choice: BackendChoice = backend.parse().map_err(err)?;
    let dir = out.map(PathBuf::from).unwrap_or_else(|| PathBuf::from("results").join(&exp.name));
    let (res, interrupt) = py.allow_threads(|| {
        let mut progress = Lines { total: 0, done: 0, next: 0, quiet, interrupt: None };
        let res = aimc::run::pipeline::run_to_dir(&exp, choice, &dir, false, overwrite, &mut progress, &mut |m| {
            if !quiet {
                eprintln!("aimc: {m}");
            }
        })
        .map_err(|e| e.to_string());
        (res, progress.interrupt)
    });
    // An interrupt is raised as itself (KeyboardInterrupt), after saying what was kept.
    if let Some(e) = interrupt {
        if let Err(m) = &res {
            eprintln!("aimc: {m}");
        }
        return Err(e);
    }
    let (_, json) = res.map_err(err)?;
    let text = std::fs::read_to_string(&json).map_err(|e| err(format!("{}: {e}", json.display())))?;
    Ok((text, dir.display().to_string()))
}

/// One draw of hardware-aware training's weight noise on a matrix's values, with the trainers'
/// own equations (`aimc::train::injector::perturb_blocked`: blocks of rows, each with its own
/// generator, on every core, the same for any core count): `training` is a `[training]` table as
/// TOML text, `seed` the draw's seed, `cols` the values per output row (0: one row). The GIL is
/// released while it draws.
fn draw(py: Python<'_>, mut w: Vec<f32>, training: &str, seed: u64, cols: usize) -> PyResult<Vec<f32>> {
    let cfg = aimc::train::hwa::TrainingConfig::parse(training).map_err(PyValueError::new_err)?;
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(PyValueError::new_err(format!("perturb_weights: value {i} is not finite; the model's weights must be finite")));
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    py.allow_threads(|| aimc::train::injector::perturb_blocked(&cfg, seed, &mut w, cols, threads));
    Ok(w)
}

/// [`draw`] on a list of floats, returned as one.
#[pyfunction]
#[pyo3(signature = (values, training, seed, cols = 0))]
fn perturb_weights(py: Python<'_>, values: Vec<f32>, training: &str, seed: u64, cols: usize) -> PyResult<Vec<f32>> {
    draw(py, values, training, seed, cols)
}

/// [`draw`] on the bytes of float32 values in native order (`numpy.ndarray.tobytes()`), returned as
/// such bytes (`numpy.frombuffer`): `aimc.torch` calls it once per matrix and training step, and
/// bytes pass a 768 × 3072 matrix without a Python float per value.
#[pyfunction]
#[pyo3(signature = (values, training, seed, cols = 0))]
fn perturb_weights_bytes<'py>(py: Python<'py>, values: &[u8], training: &str, seed: u64, cols: usize) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    if !values.len().is_multiple_of(4) {
        return Err(PyValueError::new_err(format!("perturb_weights_bytes: {} bytes are not whole float32 values", values.len())));
    }
    let w: Vec<f32> = values.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect();
    let w = draw(py, w, training, seed, cols)?;
    let out: Vec<u8> = w.iter().flat_map(|v| v.to_ne_bytes()).collect();
    Ok(pyo3::types::PyBytes::new(py, &out))
}

#[pymodule]
fn _aimc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_toml, m)?)?;
    m.add_function(wrap_pyfunction!(perturb_weights, m)?)?;
    m.add_function(wrap_pyfunction!(perturb_weights_bytes, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
