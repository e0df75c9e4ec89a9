//! Which CPU each executor thread runs on. Gateway shards are pinned, one per core (the
//! shard-per-core design); worker threads float unless `worker.cpus` pins them, so that a gateway
//! and its workers on one host (the default `gatewire start`) do not stack a worker on a shard's
//! core while another core idles. Both lists are checked against the CPUs this process may use.

use crate::rt::Cpu;

/// The CPUs this process may run on (its affinity mask), ascending.
pub fn allowed_cpus() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Gateway shard `index`: on `cpus[index % len]`, or with no list on the `index % n`-th allowed
/// CPU.
pub fn shard(cpus: &[usize], index: usize) -> Cpu {
    match cpus {
        [] => {
            let allowed = allowed_cpus();
            match allowed.is_empty() {
                true => Cpu::Any,
                false => Cpu::Fixed(allowed[index % allowed.len()]),
            }
        }
        list => Cpu::Fixed(list[index % list.len()]),
    }
}

/// Worker thread `index`: on `cpus[index % len]`, or anywhere the kernel puts it with no list.
pub fn worker(cpus: &[usize], index: usize) -> Cpu {
    match cpus {
        [] => Cpu::Any,
        list => Cpu::Fixed(list[index % list.len()]),
    }
}

/// Checks a `cpus` list against the CPUs this process may use; the error names `key`.
pub fn check(key: &str, cpus: &[usize]) -> Result<(), String> {
    let allowed = allowed_cpus();
    if allowed.is_empty() {
        return Ok(());
    }
    match cpus.iter().find(|c| !allowed.contains(c)) {
        Some(bad) => Err(format!(
            "{key} lists CPU {bad}, which this process may not use (allowed: {allowed:?})"
        )),
        None => Ok(()),
    }
}
