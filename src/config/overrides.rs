//! Overrides of a validated experiment from the command line and the Python package: `--set
//! SECTION.FIELD=VALUE` on the document before validation, and `--trials`, `--ci-halfwidth` and
//! `--shard` after it, each keeping the typed [`Experiment`] and its `resolved` form (which names
//! the run in the checkpoint journal and the results) in step.

/// The shard of this process from a batch scheduler's environment (`aimc run --shard env`):
/// a Slurm job array (`SLURM_ARRAY_TASK_ID` minus `SLURM_ARRAY_TASK_MIN`, of
/// `SLURM_ARRAY_TASK_COUNT`) or a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` of
/// `AIMC_SHARD_COUNT`, which the Job sets to its `completions`). Returns (K, N, where from).
pub fn shard_from_env(var: impl Fn(&str) -> Option<String>) -> Result<(u32, u32, &'static str), String> {
    let num = |name: &str| -> Result<Option<u32>, String> {
        match var(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| format!("{name} = {v:?} is not a whole number")),
        }
    };
    if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
        let n = num("SLURM_ARRAY_TASK_COUNT")?.ok_or("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: submit with sbatch --array=0-(N-1)")?;
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let k = id.checked_sub(min).ok_or_else(|| format!("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"))?;
        return Ok((k, n, "the Slurm job array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT)"));
    }
    if let Some(k) = num("JOB_COMPLETION_INDEX")? {
        let n =
            num("AIMC_SHARD_COUNT")?.ok_or("JOB_COMPLETION_INDEX is set but AIMC_SHARD_COUNT is not: set it to the Job's completions (deploy/k8s-job.yaml)")?;
        return Ok((k, n, "the Kubernetes Indexed Job (JOB_COMPLETION_INDEX, AIMC_SHARD_COUNT)"));
    }
    Err("--shard env: no scheduler variables found (SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX); give --shard K/N".into())
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_from_slurm_and_kubernetes() {
        let env = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        assert_eq!(shard_from_env(env(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "4")])).unwrap().0, 3);
        let (k, n, _) = shard_from_env(env(&[("SLURM_ARRAY_TASK_ID", "12"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "10")])).unwrap();
        assert_eq!((k, n), (2, 4));
        let (k, n, _) = shard_from_env(env(&[("JOB_COMPLETION_INDEX", "1"), ("AIMC_SHARD_COUNT", "8")])).unwrap();
        assert_eq!((k, n), (1, 8));
        assert!(shard_from_env(env(&[("JOB_COMPLETION_INDEX", "1")])).unwrap_err().contains("AIMC_SHARD_COUNT"));
        assert!(shard_from_env(env(&[])).unwrap_err().contains("--shard K/N"));
        assert!(shard_from_env(env(&[("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "4")])).unwrap_err().contains("whole number"));
    }
}
