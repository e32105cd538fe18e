"""placeholder"""
import zipfile


def is_keras_archive(path):
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return "config.json" in names and "model.weights.h5" in names
