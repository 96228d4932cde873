#![no_main]
//! Strict decoding of `Bundle`: no panic, stable round trip.

use libfuzzer_sys::fuzz_target;
use rn::ledger::carried::Bundle;

fuzz_target!(|data: &[u8]| rn_fuzz::round_trip::<Bundle>(data));
