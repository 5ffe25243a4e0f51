//! Any UTF-8 text through the lexer and parser only (faster than `kfl_translate`, so it goes
//! deeper into the grammar): a tree whose span lies inside the query, `None` only when there is
//! no token, or an error that renders.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    match podwire_kfl::parse(query) {
        Ok(Some(expr)) => {
            let span = expr.span();
            assert!(span.start <= span.end && span.end <= query.len(), "{span:?} in {query:?}");
        }
        // Blank: nothing but whitespace, comments and a BOM.
        Ok(None) => {
            let tokens = podwire_kfl::lexer::tokenize(query).expect("parsed, so it lexes");
            assert_eq!(tokens.len(), 1, "blank query with tokens: {query:?}");
        }
        Err(e) => {
            let rendered = e.render();
            assert!(rendered.contains(e.class.code()), "{rendered}");
            assert!(e.is_user_error(), "internal error:\n{rendered}");
        }
    }
});
