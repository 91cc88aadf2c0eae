// Another thread cannot even look at a guard: `&NsGuard` is not `Send`.
fn main() {
    let guard = nsguard::NsSet::new().enter().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| println!("{:?}", guard.switched()));
    });
}
