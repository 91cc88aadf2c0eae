// A guard restores the thread that created it; it cannot move to another.
fn main() {
    let guard = nsguard::NsSet::new().enter().unwrap();
    std::thread::spawn(move || drop(guard));
}
