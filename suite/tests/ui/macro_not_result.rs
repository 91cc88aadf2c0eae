#[nsguard::in_namespace(net = "/run/netns/blue")]
fn count() -> u32 {
    1
}

#[nsguard::in_namespace(net = "/run/netns/blue")]
fn nothing() {}

fn main() {}
