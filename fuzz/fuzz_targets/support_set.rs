//! The support-set loader never panics, and a set it accepts survives a JSON round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tkre::fewshot::SupportSet;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(set) = SupportSet::from_json(json, "fuzz") else {
        return;
    };
    if let Ok(parsed) = set.parse() {
        let again = SupportSet::from_json(&set.to_json(), "round trip").expect("own JSON parses");
        assert_eq!(
            again.parse().expect("round trip parses").relations,
            parsed.relations
        );
    }
});
