//! Events for the optional `tracing` feature. Without it, the macros
//! expand to nothing: no code, no cost.

/// `tracing::event!` with the feature, nothing without it.
macro_rules! event {
    ($($t:tt)*) => {
        #[cfg(feature = "tracing")]
        {
            ::tracing::event!(target: "nsguard", $($t)*);
        }
    };
}

pub(crate) use event;
