// tokio::spawn moves a task between worker threads at every .await: a guard
// held across one would switch back some other thread, so it is refused.
#[tokio::main]
async fn main() {
    let set = nsguard::NsSet::new();
    let task = tokio::spawn(async move {
        let guard = set.enter().unwrap();
        tokio::task::yield_now().await;
        drop(guard);
    });
    let _ = task.await;
}
