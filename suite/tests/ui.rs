//! Compile tests: an `NsGuard` cannot leave, or be shared beyond, the
//! thread it switched; every misuse of `#[in_namespace]` is an error on the
//! user's tokens; every accepted form compiles.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
