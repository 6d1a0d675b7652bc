// A tiny built-in bitmap font for chart text: 5x7 glyphs for digits, upper-case letters (lower case
// is drawn as upper case) and the punctuation charts need. Unknown characters draw as '?'.
#pragma once

namespace ddpm::plot {

constexpr int kGlyphWidth = 5, kGlyphHeight = 7;
constexpr int kGlyphAdvance = kGlyphWidth + 1;  // one column of spacing

// Row r (0 = top) of the glyph for `ch`: 5 characters, '#' = ink, '.' = background.
const char* const* glyph_rows(char ch);

}  // namespace ddpm::plot
