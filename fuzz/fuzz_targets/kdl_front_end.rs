#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| conductor::fuzzing::kdl_front_end(data));
