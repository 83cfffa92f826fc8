//! naga (the WGSL front end wgpu-core compiles with) parses and validates every kernel
//! module, with no optional capability (no f16, no subgroups), and every `.wgsl` file is
//! part of some kernel.

use edgewise_gpu::{Shader, WeightType};

/// Every kernel's module, and every mat-vec kernel's per-type variants.
fn modules() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in Shader::ALL {
        out.push((s.name().to_owned(), s.source()));
        if s.is_matvec() {
            for ty in WeightType::ALL {
                out.push((format!("{} for {ty:?}", s.name()), s.source_for(Some(ty))));
            }
        }
    }
    out
}

#[test]
fn every_kernel_is_valid_wgsl_without_optional_capabilities() {
    for (name, src) in modules() {
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
        assert!(
            module.entry_points.iter().any(|e| e.name == "main"),
            "{name} has no `main` entry point"
        );
    }
}

#[test]
fn every_wgsl_file_is_in_some_kernel() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/wgsl");
    let sources: Vec<String> = Shader::ALL.iter().map(|s| s.source()).collect();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                sources.iter().any(|s| s.contains(&text)),
                "{} is in no kernel, so no test validates it",
                path.display()
            );
            n += 1;
        }
    }
    assert_eq!(n, 12, "expected the 12 .wgsl files of src/wgsl");
}
