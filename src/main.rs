//! The `aimc` binary: parse the command line, call the library, print `Error: ...` and exit 1 on
//! failure.

mod cli;

use aimc::crossbar::{Periphery, TileShape};
use aimc::device::DeviceModel;
use aimc::engine::plan::{self, RunConfig};
use aimc::experiment::{apply_override, parse_time, time_label};
use aimc::workload::{self, io};
use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::{Cli, Command, CommonArgs};

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn parse_tile(s: &str) -> Result<TileShape> {
    let (a, b) = s.split_once(['x', 'X']).with_context(|| format!("--tile {s}: expected INPUTSxOUTPUTS, e.g. 512x512"))?;
    let (max_in, max_out): (u32, u32) = (a.trim().parse()?, b.trim().parse()?);
    if max_in == 0 || max_out == 0 || max_in > aimc::crossbar::MAX_TILE_IN {
        bail!("--tile {s}: inputs must be 1..={} and outputs >= 1", aimc::crossbar::MAX_TILE_IN);
    }
    Ok(TileShape { max_in, max_out })
}

fn run_config(c: &CommonArgs) -> Result<(RunConfig, TileShape)> {
    let mut device = DeviceModel::by_name(&c.device)
        .with_context(|| format!("--device {}: unknown model; use one of {}", c.device, aimc::device::MODEL_NAMES.join(", ")))?;
    let mut periphery = Periphery::default();
    for s in &c.set {
        apply_override(&mut device, &mut periphery, s).map_err(anyhow::Error::msg)?;
    }
    device.validate().map_err(anyhow::Error::msg)?;
    periphery.validate().map_err(anyhow::Error::msg)?;
    if c.trials == 0 {
        bail!("--trials 0: need at least 1 trial");
    }
    let times = c.times.iter().map(|t| parse_time(t)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
    if times.is_empty() || times.len() > 65_535 {
        bail!("--times: give 1 to 65535 times");
    }
    let cfg = RunConfig { device, periphery, gdc: c.gdc.into(), key: aimc::rng::key(c.seed, 0), trials: c.trials, times, max_chunk: u32::MAX, first_trial: 0 };
    Ok((cfg, parse_tile(&c.tile)?))
}

fn write_json(path: &Option<std::path::PathBuf>, v: &serde_json::Value) -> Result<()> {
    if let Some(p) = path {
        std::fs::write(p, serde_json::to_string_pretty(v)?).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

/// A progress bar with trials/s and ETA on a terminal; plain lines (every ~10 %) otherwise.
struct ProgressOut {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
    next_line: u64,
    start: std::time::Instant,
}

impl ProgressOut {
    fn new() -> Self {
        ProgressOut { bar: None, total: 0, done: 0, next_line: 0, start: std::time::Instant::now() }
    }
}

impl aimc::experiment::run::Progress for ProgressOut {
    fn start(&mut self, total: u64) {
        use std::io::IsTerminal;
        self.total = total;
        self.start = std::time::Instant::now();
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} trials  {per_sec}  ETA {eta}").unwrap().progress_chars("=> "),
            );
            self.bar = Some(bar);
        } else {
            self.next_line = total.div_ceil(10);
        }
    }
    fn advance(&mut self, n: u64) {
        self.done += n;
        if let Some(b) = &self.bar {
            b.inc(n);
        } else if self.done >= self.next_line && self.done < self.total {
            let secs = self.start.elapsed().as_secs_f64();
            let rate = self.done as f64 / secs.max(1e-9);
            eprintln!(
                "progress: {}/{} trials ({:.0} %), {:.1} trials/s, ETA {:.0} s",
                self.done,
                self.total,
                100.0 * self.done as f64 / self.total as f64,
                rate,
                (self.total - self.done) as f64 / rate.max(1e-9)
            );
            self.next_line += self.total.div_ceil(10);
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { experiment, backend, out, trials, shard, profile } => {
            let mut exp = aimc::experiment::Experiment::load(&experiment)?;
            if let Some(t) = trials {
                if t == 0 {
                    bail!("--trials 0: need at least 1 trial");
                }
                exp.trials = t;
                exp.weight_error_trials = exp.weight_error_trials.min(t);
                exp.resolved["trials"] = t.into();
            }
            let mut default_dir = std::path::PathBuf::from("results").join(&exp.name);
            if let Some(s) = &shard {
                let (k, n) = s.split_once('/').with_context(|| format!("--shard {s}: expected K/N, e.g. 0/4"))?;
                let (k, n): (u32, u32) = (
                    k.trim().parse().with_context(|| format!("--shard {s}: K must be an integer"))?,
                    n.trim().parse().with_context(|| format!("--shard {s}: N must be an integer"))?,
                );
                exp.apply_shard(k, n).map_err(anyhow::Error::msg)?;
                default_dir = default_dir.join(format!("shard-{k}-of-{n}"));
            }
            let dir = out.unwrap_or(default_dir);
            let mut be = aimc::engine::open(backend)?;
            let ad = be.adapter();
            eprintln!("{}: {} sweep points x {} times x {} trials on {} ({})", exp.name, exp.points.len(), exp.times.len(), exp.trials, ad.name, ad.backend);
            let mut progress = ProgressOut::new();
            be.set_profiling(profile);
            let mut outcome = aimc::experiment::run::run(&exp, be.as_mut(), &mut progress);
            outcome.results.profile = be.take_profile()?;
            if let Some(p) = &outcome.results.profile {
                eprintln!("where the time went:\n{}", p.table());
            }
            if let Some(err) = outcome.error {
                if !outcome.results.points.is_empty() {
                    let p = outcome.results.save(&dir, false).with_context(|| format!("writing partial results to {}", dir.display()))?;
                    eprintln!("the points finished before the error are saved in {} (not a complete run)", p.display());
                }
                return Err(err.into());
            }
            let r = outcome.results;
            let path = r.save(&dir, true).with_context(|| format!("writing results to {}", dir.display()))?;
            aimc::report::write_report(&r, &dir)?;
            println!("{}", aimc::experiment::run::console_summary(&r));
            println!(
                "{:.1} s, {:.0} trials/s; results in {} (report.md, report.html, plots)",
                r.run_seconds,
                r.trials_per_second,
                path.parent().unwrap().display()
            );
            Ok(())
        }
        Command::Merge { out, shards } => {
            let parts = shards.iter().map(|d| aimc::report::results::Results::load(d)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
            let r = aimc::experiment::merge::merge(parts).map_err(anyhow::Error::msg)?;
            let path = r.save(&out, true).with_context(|| format!("writing merged results to {}", out.display()))?;
            aimc::report::write_report(&r, &out)?;
            println!("{}", aimc::experiment::run::console_summary(&r));
            println!("merged {} shards ({} trials) into {}", shards.len(), r.trials, path.display());
            Ok(())
        }
        Command::Check { experiment } => {
            let exp = aimc::experiment::Experiment::load(&experiment)?;
            println!(
                "{}: ok ({:?}, {} sweep points x {} times x {} trials, {} layers)",
                experiment.display(),
                exp.workload,
                exp.points.len(),
                exp.times.len(),
                exp.trials,
                exp.layers.len()
            );
            Ok(())
        }
        Command::Report { dir } => {
            let r = aimc::report::results::Results::load(&dir).map_err(anyhow::Error::msg)?;
            aimc::report::write_report(&r, &dir)?;
            println!("rebuilt the plots and report in {}", dir.display());
            Ok(())
        }
        Command::Devices => {
            let list = aimc::engine::gpu::list_adapters();
            if list.is_empty() {
                println!("no GPU adapters (install a Vulkan driver; on Debian: apt-get install -y mesa-vulkan-drivers libvulkan1)");
            }
            let hw = aimc::engine::gpu::choose(&list, aimc::engine::gpu::AdapterPick::Hardware);
            let any = aimc::engine::gpu::choose(&list, aimc::engine::gpu::AdapterPick::Any);
            println!("{:<3} {:<44} {:<8} {:<14} {:<30} used by", "#", "name", "backend", "type", "driver");
            for (i, a) in list.iter().enumerate() {
                let info = aimc::engine::gpu::info_of(a);
                let mut used = Vec::new();
                if hw == Some(i) {
                    used.push("--backend auto");
                }
                if any == Some(i) {
                    used.push("--backend gpu");
                }
                println!("{:<3} {:<44} {:<8} {:<14} {:<30} {}", i, info.name, info.backend, info.device_type, info.driver, used.join(", "));
            }
            if hw.is_none() {
                println!("--backend auto uses the CPU twin ({} threads): no hardware GPU", aimc::engine::cpu::default_threads());
            }
            Ok(())
        }
        Command::Weights { matrix, tensor, common } => {
            let (cfg, shape) = run_config(&common)?;
            let m = io::read_matrix(&matrix, tensor.as_deref())?;
            let omega = cfg.periphery.weight_scaling_omega as f32;
            let mapped = aimc::crossbar::MappedMatrix::new(&m.data, m.rows as u32, m.cols as u32, shape, omega);
            let mut be = aimc::engine::open(common.backend)?;
            let ad = be.adapter();
            eprintln!("{} x {} weights on {} tiles, {} trials, backend: {} ({})", m.rows, m.cols, mapped.n_tiles(), cfg.trials, ad.name, ad.backend);
            let start = std::time::Instant::now();
            let pts = plan::run_weight_error(be.as_mut(), &mapped, &cfg)?;
            let rows = workload::summarize_weight_error(&pts);
            println!("{:>10} {:>12} {:>12} {:>10} {:>10}", "t", "mean E", "std E", "GDC mean", "GDC std");
            for r in &rows {
                println!("{:>10} {:>12.5} {:>12.5} {:>10.4} {:>10.4}", time_label(r.t_inf), r.mean, r.std, r.alpha_mean, r.alpha_std);
            }
            eprintln!("{:.2} s", start.elapsed().as_secs_f64());
            write_json(&common.json, &serde_json::json!({ "adapter": ad, "device": cfg.device, "periphery": cfg.periphery, "gdc": cfg.gdc, "rows": rows }))
        }
        Command::Mlp { model, data, scale, rows, activation, common } => {
            let (cfg, shape) = run_config(&common)?;
            let layers = io::read_state_dict(&model)?;
            let mut ds = io::read_csv(&data, scale)?;
            if let Some(r) = rows {
                let (a, b) = r.split_once("..").with_context(|| format!("--rows {r}: expected START..END"))?;
                let (a, b): (usize, usize) = (a.parse()?, b.parse()?);
                if a >= b || b > ds.len() {
                    bail!("--rows {r}: the data set has {} rows; need START < END <= {}", ds.len(), ds.len());
                }
                ds = ds.rows(a, b);
            }
            workload::check_shapes(&layers, &ds)?;
            let (fp_c, fp_n) = workload::fp_accuracy(&layers, activation, &ds);
            let analog = workload::analog_layers(&layers, activation, shape, cfg.periphery.weight_scaling_omega as f32);
            let mut be = aimc::engine::open(common.backend)?;
            let ad = be.adapter();
            eprintln!("{} layers, {} samples, {} trials, backend: {} ({})", layers.len(), ds.len(), cfg.trials, ad.name, ad.backend);
            let start = std::time::Instant::now();
            let pts = plan::run_classifier(be.as_mut(), &analog, &ds.x, &ds.labels, &cfg)?;
            let fp = fp_c as f64 / fp_n as f64;
            println!("floating-point accuracy: {:.2} % ({fp_c}/{fp_n})", 100.0 * fp);
            println!("{:>10} {:>9} {:>8} {:>8} {:>8} {:>19}", "t", "mean %", "std", "min", "max", "95% CI of mean");
            let mut out = Vec::new();
            for p in &pts {
                let acc: Vec<f64> = p.correct.iter().map(|&c| c as f64 / p.n_samples as f64).collect();
                let s = aimc::stats::Summary::from_sample(&acc)?;
                let mom: aimc::stats::Moments = acc.iter().copied().collect();
                let ci = aimc::stats::mean_t(&mom, 0.95)?;
                println!(
                    "{:>10} {:>9.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} .. {:>7.2}",
                    time_label(p.t_inf),
                    100.0 * s.mean,
                    100.0 * s.std,
                    100.0 * s.min,
                    100.0 * s.max,
                    100.0 * ci.lo,
                    100.0 * ci.hi
                );
                out.push(serde_json::json!({ "t_inf": p.t_inf, "summary": s, "mean_ci95": ci, "correct": p.correct, "n_samples": p.n_samples }));
            }
            eprintln!("{:.2} s", start.elapsed().as_secs_f64());
            write_json(
                &common.json,
                &serde_json::json!({ "adapter": ad, "fp_accuracy": fp, "device": cfg.device, "periphery": cfg.periphery, "gdc": cfg.gdc, "points": out }),
            )
        }
        Command::Bench { backend, size, breakdown } => aimc::bench::run(backend, &size, breakdown).map_err(Into::into),
        Command::TrainDigits { out, data, hidden, activation } => {
            let d = aimc::train::TrainConfig::default();
            let cfg = aimc::train::TrainConfig { hidden: hidden.unwrap_or(d.hidden.clone()), activation: activation.unwrap_or(d.activation), ..d };
            if cfg.hidden.contains(&0) {
                bail!("--hidden {:?}: every width must be >= 1", cfg.hidden);
            }
            let text = std::fs::read_to_string(&data).with_context(|| format!("reading {}", data.display()))?;
            let ds = aimc::train::parse_digits_csv(&text)?;
            let (train, test) = aimc::train::split_digits(&ds);
            let start = std::time::Instant::now();
            let model = aimc::train::train_mlp(&train, &cfg);
            aimc::train::save_safetensors(&model, &aimc::train::training_command(&cfg), &out)?;
            let dims: Vec<String> = model.dims().iter().map(usize::to_string).collect();
            println!(
                "{} MLP ({}) trained in {:.1} s: train accuracy {:.2} %, test accuracy {:.2} %; wrote {}",
                dims.join("-"),
                cfg.activation.name(),
                start.elapsed().as_secs_f64(),
                100.0 * aimc::train::accuracy(&model, &train),
                100.0 * aimc::train::accuracy(&model, &test),
                out.display()
            );
            Ok(())
        }
    }
}
