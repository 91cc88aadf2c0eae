// A future holding a guard across an `.await` is not `Send`: a
// work-stealing executor could resume it on another thread.
fn spawn_on_any_thread<F: std::future::Future + Send + 'static>(_: F) {}

async fn io() {}

fn main() {
    spawn_on_any_thread(async {
        let set = nsguard::NsSet::new();
        let guard = set.enter().unwrap();
        io().await;
        drop(guard);
    });
}
