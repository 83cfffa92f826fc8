//! Feeds arbitrary bytes to the GGUF reader, configuration, tokenizer and model loader.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Errors are the expected outcome for most inputs; only a panic or abort is a finding.
    let _ = edgewise_llm::fuzz_entry::fuzz_parse(data);
});
