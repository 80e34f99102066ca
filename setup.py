"""The package list, which pyproject.toml cannot express alone: everything under platform/ and workers/, plus the
platform's migrations (sql/) and RLS policies (policies/) as package data.

Those two folders stay at the top of the repository (DESIGN.md's layout); pyproject.toml's package-dir maps them to
`tuskbase._sql` and `tuskbase._policies`, so a wheel or a regular install carries them inside the package. A
`packages.find` there cannot be combined with extra packages, hence this file. policies/ is listed only when it
exists: a folder with no file yet is absent from a clone. An editable install does not expose the mapped folders
inside the package (setuptools' editable finder maps only whole packages); tuskbase reads them from the source tree
then (`tuskbase.migrate.platform_folder`).
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

DATA_PACKAGES = {"tuskbase._sql": "sql", "tuskbase._policies": "policies"}

setup(
    packages=[
        *find_namespace_packages("platform"),
        *find_namespace_packages("workers"),
        *(name for name, folder in DATA_PACKAGES.items() if Path(folder).is_dir()),
    ],
)
