#![no_main]
//! Strict decoding of `Snapshot`: no panic, stable round trip.

use libfuzzer_sys::fuzz_target;
use rn::ledger::log::Snapshot;

fuzz_target!(|data: &[u8]| rn_fuzz::round_trip::<Snapshot>(data));
