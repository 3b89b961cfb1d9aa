//! Sleeps for an hour inside a host call, where epochs cannot reach it: the deadline must
//! still end the call on time.
fn main() {
    std::thread::sleep(std::time::Duration::from_secs(3600));
    println!("null");
}
