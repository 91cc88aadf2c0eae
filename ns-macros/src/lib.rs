//! The `#[in_namespace(...)]` attribute of [nsguard](https://docs.rs/nsguard).
//!
//! Depend on `nsguard`, which re-exports the attribute; this crate is an
//! implementation detail and its generated code refers to nsguard only
//! through `nsguard::__private`.

#![forbid(unsafe_code)]
