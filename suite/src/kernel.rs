//! What the running kernel has, read from `/proc` (never from nsguard, whose
//! probe the tests check against it), and tests skipped for what it lacks,
//! with the reason where CI logs show it.

use nsguard::NsKind;

/// The file whose existence tells that the kernel has time namespaces.
const TIME_FOR_CHILDREN: &str = "/proc/thread-self/ns/time_for_children";

/// Whether this kernel has time namespaces (Linux 5.6 with
/// `CONFIG_TIME_NS`): whether the calling thread's `time_for_children` link
/// exists (what a thread's time namespace is read from, and what `setns`
/// of a time namespace changes). The link itself: it is not followed.
/// `tools/kernel-emu` hides it, with `ns/time`, to emulate older kernels.
pub fn has_time_ns() -> bool {
    std::fs::symlink_metadata(TIME_FOR_CHILDREN).is_ok()
}

/// Prints that `what` was skipped and why, where the test harness does not
/// capture it (straight to the process's stderr), so that CI logs show it.
pub fn skipped(what: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {what}: {why}");
}

/// For a test that needs time namespaces: true if the kernel has them,
/// else prints why `what` is skipped and returns false.
pub fn require_time_ns(what: &str) -> bool {
    if has_time_ns() {
        return true;
    }
    skipped(
        what,
        &format!(
            "needs time namespaces (Linux 5.6 with CONFIG_TIME_NS); \
             {TIME_FOR_CHILDREN} does not exist"
        ),
    );
    false
}

/// For a test that needs a kernel *without* time namespaces (as under
/// `tools/kernel-emu --kernel 5.4`): true if time namespaces are absent,
/// else prints why `what` is skipped and returns false.
pub fn require_no_time_ns(what: &str) -> bool {
    if !has_time_ns() {
        return true;
    }
    skipped(
        what,
        "needs a kernel without time namespaces (CI runs it under tools/kernel-emu --kernel 5.4)",
    );
    false
}

/// `kinds` without time, when the kernel lacks it (saying so for `what`).
pub fn kinds_this_kernel_has(what: &str, kinds: &[NsKind]) -> Vec<NsKind> {
    if kinds.contains(&NsKind::Time) && !require_time_ns(&format!("{what} (its time part)")) {
        return kinds
            .iter()
            .copied()
            .filter(|k| *k != NsKind::Time)
            .collect();
    }
    kinds.to_vec()
}
