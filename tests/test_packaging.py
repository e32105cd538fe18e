"""tinynet's kernels install as ``tinynet.kernels``: no other package or folder named ``kernels`` can shadow them."""
import subprocess
import sys
import tomllib

from conftest import REPO


def test_a_kernels_package_in_the_working_directory_does_not_shadow_tinynets(tmp_path):
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "__init__.py").write_text("raise ImportError('the user folder was imported')\n")
    script = ("import importlib.util, tinynet, tinynet.kernels, tinynet.plan\n"
              "assert importlib.util.find_spec('kernels').origin.startswith(%r)\n"
              "print(tinynet.kernels.__file__)" % str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not result.stdout.strip().startswith(str(tmp_path))


def test_the_distribution_name_is_not_the_unrelated_pypi_tinynet_and_ships_its_license():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] != "tinynet" and project["scripts"]["tinynet"] == "tinynet.cli:main"
    assert "Apache License" in (REPO / "LICENSE").read_text() and project["license-files"] == ["LICENSE"]


def test_every_source_folder_is_an_installed_package():
    """A non-editable install ships only the listed packages: a folder of modules left off the list would be missing."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"tinynet.kernels": REPO / "kernels"}
    folders.update({".".join(folder.relative_to(REPO).parts): folder for folder in (REPO / "tinynet").rglob("*")
                    if folder.is_dir() and any(folder.glob("*.py"))})
    folders.update({"tinynet.kernels." + ".".join(f.relative_to(REPO / "kernels").parts): f
                    for f in (REPO / "kernels").rglob("*") if f.is_dir() and any(f.glob("*.py"))})
    assert set(folders) | {"tinynet"} <= set(setuptools["packages"])
