use std::rc::Rc;

#[nsguard::in_namespace(net = "/run/netns/blue")]
fn f(shared: Rc<String>) -> std::io::Result<usize> {
    Ok(shared.len())
}

fn main() {}
