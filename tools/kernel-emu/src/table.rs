//! Which system calls each kernel release has, and what an emulated release
//! takes away.

use std::fmt;
use std::str::FromStr;

/// A kernel release, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release(pub u32, pub u32);

impl FromStr for Release {
    type Err = String;

    fn from_str(s: &str) -> Result<Release, String> {
        let (major, minor) = s
            .split_once('.')
            .ok_or_else(|| format!("{s:?} is not a release like 5.4"))?;
        let number = |part: &str| {
            part.parse::<u32>()
                .map_err(|_| format!("{s:?} is not a release like 5.4"))
        };
        Ok(Release(number(major)?, number(minor)?))
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// The oldest release this table describes: every system call numbered
/// below 424 (`FIRST_UNIFIED`) existed by then (x86_64: `rseq`, 334, came in
/// 4.18; aarch64: `rseq`, 293, too).
pub const OLDEST: Release = Release(4, 18);

/// From 424 on, x86_64 and aarch64 (and every other architecture) share
/// one numbering: the table below holds for both.
#[cfg(test)]
pub const FIRST_UNIFIED: u32 = 424;

/// The system calls numbered from 424 on, with the release
/// that added each. Anything numbered after the last one is refused too:
/// it is newer than this table.
pub const ADDED: &[(u32, &str, Release)] = &[
    (424, "pidfd_send_signal", Release(5, 1)),
    (425, "io_uring_setup", Release(5, 1)),
    (426, "io_uring_enter", Release(5, 1)),
    (427, "io_uring_register", Release(5, 1)),
    (428, "open_tree", Release(5, 2)),
    (429, "move_mount", Release(5, 2)),
    (430, "fsopen", Release(5, 2)),
    (431, "fsconfig", Release(5, 2)),
    (432, "fsmount", Release(5, 2)),
    (433, "fspick", Release(5, 2)),
    (434, "pidfd_open", Release(5, 3)),
    (435, "clone3", Release(5, 3)),
    (436, "close_range", Release(5, 9)),
    (437, "openat2", Release(5, 6)),
    (438, "pidfd_getfd", Release(5, 6)),
    (439, "faccessat2", Release(5, 8)),
    (440, "process_madvise", Release(5, 10)),
    (441, "epoll_pwait2", Release(5, 11)),
    (442, "mount_setattr", Release(5, 12)),
    (443, "quotactl_fd", Release(5, 14)),
    (444, "landlock_create_ruleset", Release(5, 13)),
    (445, "landlock_add_rule", Release(5, 13)),
    (446, "landlock_restrict_self", Release(5, 13)),
    (447, "memfd_secret", Release(5, 14)),
    (448, "process_mrelease", Release(5, 15)),
    (449, "futex_waitv", Release(5, 16)),
    (450, "set_mempolicy_home_node", Release(5, 17)),
    (451, "cachestat", Release(6, 5)),
    (452, "fchmodat2", Release(6, 6)),
    (453, "map_shadow_stack", Release(6, 6)),
    (454, "futex_wake", Release(6, 7)),
    (455, "futex_wait", Release(6, 7)),
    (456, "futex_requeue", Release(6, 7)),
    (457, "statmount", Release(6, 8)),
    (458, "listmount", Release(6, 8)),
    (459, "lsm_get_self_attr", Release(6, 8)),
    (460, "lsm_set_self_attr", Release(6, 8)),
    (461, "lsm_list_modules", Release(6, 8)),
    (462, "mseal", Release(6, 10)),
    (463, "setxattrat", Release(6, 13)),
    (464, "getxattrat", Release(6, 13)),
    (465, "listxattrat", Release(6, 13)),
    (466, "removexattrat", Release(6, 13)),
    (467, "open_tree_attr", Release(6, 15)),
    (468, "file_getattr", Release(6, 17)),
    (469, "file_setattr", Release(6, 17)),
];

/// The first number past the table: refused on every emulated release.
pub const PAST_TABLE: u32 = 470;

/// Time namespaces came in 5.6 (and need `CONFIG_TIME_NS`).
pub const TIME_NS: Release = Release(5, 6);

/// The ranges of system call numbers (inclusive) that `release` does not
/// have, merged, ending with everything past the table.
pub fn missing(release: Release) -> Vec<(u32, u32)> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    let numbers = ADDED
        .iter()
        .filter(|(_, _, added)| *added > release)
        .map(|(nr, _, _)| *nr)
        .chain(std::iter::once(PAST_TABLE));
    for nr in numbers {
        match ranges.last_mut() {
            Some((_, hi)) if *hi + 1 == nr => *hi = nr,
            _ => ranges.push((nr, nr)),
        }
    }
    if let Some((_, hi)) = ranges.last_mut() {
        *hi = u32::MAX;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_complete_and_in_order() {
        for (i, (nr, _, _)) in ADDED.iter().enumerate() {
            assert_eq!(*nr, FIRST_UNIFIED + i as u32);
        }
        assert_eq!(PAST_TABLE, FIRST_UNIFIED + ADDED.len() as u32);
    }

    #[test]
    fn missing_ranges() {
        assert_eq!(missing(Release(4, 18)), [(424, u32::MAX)]);
        assert_eq!(missing(Release(5, 4)), [(436, u32::MAX)]);
        // close_range (5.9) is numbered before openat2 (5.6).
        assert_eq!(missing(Release(5, 6)), [(436, 436), (439, u32::MAX)]);
        assert_eq!(missing(Release(6, 1)), [(451, u32::MAX)]);
        assert_eq!(missing(Release(7, 0)), [(470, u32::MAX)]);
    }

    #[test]
    fn releases_parse() {
        assert_eq!("4.18".parse(), Ok(Release(4, 18)));
        assert!("5".parse::<Release>().is_err());
        assert!(Release(4, 18) < Release(5, 4));
    }
}
