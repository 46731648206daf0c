//! Pins the calling thread to a configured core with `core_affinity`,
//! skipping cleanly (and saying so) when the core does not exist on this
//! machine, so one configuration works on a 2-core laptop and a 64-core host.

/// Pins the current thread to `core` if given and present. Returns whether
/// it is pinned.
pub fn pin_current_thread(role: &str, core: Option<usize>) -> bool {
    let Some(core) = core else {
        return false;
    };
    let available = core_affinity::get_core_ids().unwrap_or_default();
    match available.into_iter().find(|id| id.id == core) {
        Some(id) => core_affinity::set_for_current(id),
        None => {
            eprintln!("lockstep: {role}: core {core} does not exist here; running unpinned");
            false
        }
    }
}
