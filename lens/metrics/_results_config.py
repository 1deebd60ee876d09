"""How the metrics stage's values sit in a results document.

The results model (``lens.export.results``) holds these frozen dataclasses as they are:
pydantic validates and serialises stdlib dataclasses, so a value is written exactly as
the metrics stage computed it and read back as the same type, with no copy in between.
Their fields carry the document's descriptions (``Annotated[..., Field(description=...)]``)
and every class sets ``__pydantic_config__ = RESULTS_VALUE`` so that a results file with an
unknown field in one of them is refused, as it is everywhere else in the document.
"""

from __future__ import annotations

from pydantic import ConfigDict

RESULTS_VALUE = ConfigDict(extra="forbid")
