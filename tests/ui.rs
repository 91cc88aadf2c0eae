//! Compile-fail tests: an `NsGuard` cannot leave, or be shared beyond, the
//! thread it switched.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
