"""Static files with hashed, compressed names where `collectstatic` ran (the image), and plain
names where it did not (development, tests), from one storage class.

collectstatic writes each file under a name carrying its content's hash (app.3f2a….css),
gzipped beside it, and a manifest (staticfiles.json) mapping the plain names to those: pages
then link to names that change with the content, which WhiteNoise serves with a year's
caching. A process that finds no manifest in STATIC_ROOT, or a file the manifest does not
list (added since the last collectstatic), links to the plain name instead of failing the
page, and WhiteNoise serves it from the app's static folders (WHITENOISE_USE_FINDERS).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from whitenoise.storage import CompressedManifestStaticFilesStorage


class CollectedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    def stored_name(self, name: str) -> str:
        clean_name = urlsplit(unquote(name)).path.strip()
        if self.hash_key(clean_name) not in self.hashed_files:
            return name
        return super().stored_name(name)
