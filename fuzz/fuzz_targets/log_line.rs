#![no_main]
//! Strict decoding of `LogEntry`: no panic, stable round trip.

use libfuzzer_sys::fuzz_target;
use rn::ledger::log::LogEntry;

fuzz_target!(|data: &[u8]| rn_fuzz::round_trip::<LogEntry>(data));
