-- Typst only (listed under format: typst: filters in _quarto.yml).
--
-- Quarto wraps every {{< embed >}} in a Div (class quarto-embed-nb-cell), which pandoc writes
-- as `#block[...]`. A floating figure (placement: auto, typst-show.typ) cannot leave the block
-- it is in: when it does not fit in the rest of the page, the block moves it to the next page
-- and everything after the block follows it there, leaving the rest of the page blank. The
-- wrapper has no visual effect, so it is dropped and the figure floats in the page's own flow
-- (the text and tables after it fill the page).
function Div(div)
  if div.classes:includes("quarto-embed-nb-cell") then
    return div.content
  end
end
