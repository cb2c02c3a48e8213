pub fn run() {
    println!("sim speed: pending raft-sim API");
}
