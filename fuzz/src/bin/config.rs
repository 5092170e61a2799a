//! AFL++ target: `nw_fuzz::Target::Config`.

use nw_fuzz::alloc::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() {
    afl::fuzz!(|data: &[u8]| nw_fuzz_afl::check(nw_fuzz::Target::Config, data));
}
