fn main() {
    println!("xdpswitch (in progress)");
}
