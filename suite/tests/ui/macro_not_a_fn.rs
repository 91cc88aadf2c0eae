#[nsguard::in_namespace(net = "/run/netns/blue")]
struct Config {
    name: String,
}

fn main() {}
