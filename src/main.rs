fn main() {
    println!("phiwatch");
}
