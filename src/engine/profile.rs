//! Where the time goes: per-stage time, share, dispatch count and bound bytes, plus the host
//! traffic (uploads and readbacks) of everything a backend ran while profiling was on.
//!
//! The GPU backend times each dispatch with timestamp queries where the adapter has
//! `TIMESTAMP_QUERY` (the time the GPU spent in the compute pass), otherwise with the wall clock
//! around a dispatch it submits and waits for alone. The CPU backend times each dispatch with the
//! wall clock. "Bound bytes" is the sum of the sizes of the buffers a dispatch binds: an upper bound
//! on the memory it touches, which the per-stage floors of `aimc bench` compare against.

// The data lives in the results schema (it is saved in results.json); the engine adds the
// accumulating methods and the table.
use crate::engine::layout::StageParams;
use crate::engine::stages::Stage;
pub use crate::results::{Profile, StageTime};

/// The profile row of a dispatch: its stage's name, and for bound management's level-1 pass of
/// `dac` and the GEMMs that name with the level, so the redo's cost shows apart from the first read.
pub fn row_label(stage: Stage, p: &StageParams) -> &'static str {
    if p.layer.bm_pass != 1 {
        return stage.name();
    }
    match stage {
        Stage::Dac => "dac, level 1",
        Stage::Mvm => "mvm, level 1",
        Stage::MvmNarrow => "mvm_narrow, level 1",
        Stage::MvmFull => "mvm_full, level 1",
        _ => stage.name(),
    }
}

impl Profile {
    pub fn new(timer: &str) -> Self {
        Profile { timer: timer.into(), ..Default::default() }
    }

    /// Adds host wall time to `activity`.
    pub fn add_host(&mut self, activity: &str, seconds: f64) {
        match self.host.iter_mut().find(|(a, _)| a == activity) {
            Some((_, s)) => *s += seconds,
            None => self.host.push((activity.to_string(), seconds)),
        }
    }

    /// Adds one dispatch of `stage`.
    pub fn add(&mut self, stage: &str, seconds: f64, bound_bytes: u64) {
        match self.stages.iter_mut().find(|s| s.stage == stage) {
            Some(s) => {
                s.seconds += seconds;
                s.dispatches += 1;
                s.bound_bytes += bound_bytes;
            }
            None => self.stages.push(StageTime { stage: stage.into(), seconds, dispatches: 1, bound_bytes }),
        }
    }

    /// Adds another profile's counts (chunks of one run, or runs of one sweep).
    pub fn absorb(&mut self, other: &Profile) {
        if self.timer.is_empty() {
            self.timer = other.timer.clone();
        }
        for s in &other.stages {
            match self.stages.iter_mut().find(|x| x.stage == s.stage) {
                Some(x) => {
                    x.seconds += s.seconds;
                    x.dispatches += s.dispatches;
                    x.bound_bytes += s.bound_bytes;
                }
                None => self.stages.push(s.clone()),
            }
        }
        for (a, t) in &other.host {
            self.add_host(a, *t);
        }
        if let Some(w) = other.wall_seconds {
            self.wall_seconds = Some(self.wall_seconds.unwrap_or(0.0) + w);
        }
        self.uploads += other.uploads;
        self.upload_bytes += other.upload_bytes;
        self.readbacks += other.readbacks;
        self.readback_bytes += other.readback_bytes;
    }

    pub fn total_seconds(&self) -> f64 {
        self.stages.iter().map(|s| s.seconds).sum()
    }

    /// Stages sorted by time, largest first.
    pub fn sorted(&self) -> Vec<StageTime> {
        let mut v = self.stages.clone();
        v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        v
    }

    /// A fixed-width table for the terminal (and the markdown report, inside a code block).
    pub fn table(&self) -> String {
        let total = self.total_seconds().max(1e-12);
        let mut s = format!("{:<14} {:>10} {:>7} {:>11} {:>12} {:>10}\n", "stage", "time", "share", "dispatches", "bound bytes", "GB/s bound");
        for st in self.sorted() {
            s.push_str(&format!(
                "{:<14} {:>10} {:>6.1}% {:>11} {:>12} {:>10.2}\n",
                st.stage,
                seconds(st.seconds),
                100.0 * st.seconds / total,
                st.dispatches,
                bytes(st.bound_bytes),
                st.bound_bytes as f64 / st.seconds.max(1e-12) / 1e9
            ));
        }
        s.push_str(&format!(
            "{:<14} {:>10}   ({}; {} uploads, {}; {} readbacks, {})\n",
            "total",
            seconds(total),
            self.timer,
            self.uploads,
            bytes(self.upload_bytes),
            self.readbacks,
            bytes(self.readback_bytes)
        ));
        match self.wall_seconds {
            Some(_) => s.push_str(&self.wall_table()),
            None if !self.host.is_empty() => {
                let parts: Vec<String> = self.host.iter().map(|(a, t)| format!("{a} {}", seconds(*t))).collect();
                s.push_str(&format!("host (wall clock, outside the stages): {}\n", parts.join(", ")));
            }
            None => {}
        }
        s
    }

    /// Whether the stage times were taken on the host's clock, one after another with the host
    /// activities (the CPU backend, or a GPU timed one dispatch per submission), rather than by
    /// GPU timestamps that overlap the host's work.
    pub fn stages_on_host_clock(&self) -> bool {
        !self.timer.contains("timestamp")
    }

    /// The run's wall time broken down: the stages when they ran on the host's clock, each host
    /// activity, and what is left ("everything else": the workloads' own host code between
    /// dispatches, such as building inputs and counting correct answers). With GPU timestamps the
    /// stages overlap the host, and the GPU's busy share of the wall is given instead.
    pub fn wall_breakdown(&self) -> Vec<(String, f64)> {
        let Some(wall) = self.wall_seconds else { return vec![] };
        let mut rows = Vec::new();
        if self.stages_on_host_clock() {
            rows.push(("stages (dispatches)".to_string(), self.total_seconds()));
        }
        let mut host = self.host.clone();
        host.sort_by(|a, b| b.1.total_cmp(&a.1));
        rows.extend(host);
        let used: f64 = rows.iter().map(|r| r.1).sum();
        rows.push(("everything else".to_string(), (wall - used).max(0.0)));
        rows
    }

    fn wall_table(&self) -> String {
        let Some(wall) = self.wall_seconds else { return String::new() };
        let mut s = format!("wall time of the run {}, by activity on the host:\n", seconds(wall));
        for (a, t) in self.wall_breakdown() {
            s.push_str(&format!("  {:<38} {:>10} {:>6.1}%\n", a, seconds(t), 100.0 * t / wall.max(1e-12)));
        }
        if !self.stages_on_host_clock() {
            s.push_str(&format!(
                "  (the GPU ran the stages for {} ({:.1}% of the wall), overlapping the host; waits hold the part the host did not hide)\n",
                seconds(self.total_seconds()),
                100.0 * self.total_seconds() / wall.max(1e-12)
            ));
        }
        s
    }
}

fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_absorb_accumulate_per_stage() {
        let mut a = Profile::new("wall clock");
        a.add("mvm", 2.0, 100);
        a.add("dac", 1.0, 10);
        a.add("mvm", 1.0, 100);
        let mut b = Profile::new("wall clock");
        b.add("dac", 0.5, 10);
        b.readbacks = 3;
        b.readback_bytes = 12;
        a.absorb(&b);
        let s = a.sorted();
        assert_eq!((s[0].stage.as_str(), s[0].seconds, s[0].dispatches, s[0].bound_bytes), ("mvm", 3.0, 2, 200));
        assert_eq!((s[1].stage.as_str(), s[1].seconds, s[1].dispatches, s[1].bound_bytes), ("dac", 1.5, 2, 20));
        assert_eq!((a.readbacks, a.readback_bytes), (3, 12));
        assert!(a.table().contains("66.7%"), "{}", a.table());
    }

    #[test]
    fn wall_breakdown_leaves_the_rest_to_everything_else() {
        // Stages on the host clock: stages + host activities + everything else = wall.
        let mut a = Profile::new("wall clock");
        a.add("mvm", 2.0, 0);
        a.add_host("statistics", 1.0);
        a.add_host("readbacks", 0.5);
        a.wall_seconds = Some(4.0);
        let rows = a.wall_breakdown();
        let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(names, ["stages (dispatches)", "statistics", "readbacks", "everything else"]);
        assert_eq!(rows.iter().map(|r| r.1).sum::<f64>(), 4.0);
        assert_eq!(rows[3].1, 0.5);
        assert!(a.table().contains("wall time of the run 4.000 s"), "{}", a.table());
        // GPU timestamps overlap the host: the stages are not a row of the wall.
        let mut g = Profile::new("timestamp queries");
        g.add("mvm", 2.0, 0);
        g.add_host("wait for readbacks", 2.5);
        g.wall_seconds = Some(3.0);
        let rows = g.wall_breakdown();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], ("everything else".to_string(), 0.5));
        assert!(g.table().contains("overlapping the host"), "{}", g.table());
        // Absorbing sums the host activities and the walls.
        let mut b = Profile::new("wall clock");
        b.absorb(&a);
        b.absorb(&a);
        assert_eq!(b.wall_seconds, Some(8.0));
        assert_eq!(b.host.iter().find(|h| h.0 == "statistics").map(|h| h.1), Some(2.0));
    }
}
