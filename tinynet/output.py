"""How the command line writes results: a text table for people, JSON lines or CSV for programs.

classify, per image:  text   the path, then "  71.59%  military uniform" per prediction
                      json   {"image", "predictions": [{"index", "label", "probability"}, ...]}, or {"image", "error"}
                      csv    image,rank,index,label,probability,error: a row per prediction, or one with the error
eval --per-image:     json   {"image", "true_index", "correct", "predictions": [...top 5, as classify's...]}, or
                             {"image", "true_index", "error"}
                      csv    image,true_index,correct,index,label,probability,top5,error: a row per image; index,
                             label and probability are the top prediction's, top5 the 5 best class indices, best first,
                             separated by spaces
"""
import csv
import io
import json

FORMATS = ("text", "json", "csv")
CLASSIFY_COLUMNS = ("image", "rank", "index", "label", "probability", "error")
PER_IMAGE_COLUMNS = ("image", "true_index", "correct", "index", "label", "probability", "top5", "error")


def _csv_rows(rows):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _prediction(index, label, probability):
    return {"index": index, "label": label, "probability": round(probability, 6)}


class ClassifyWriter:
    """Formats `tinynet classify` results as ``form`` ("text", "json" or "csv"); each method returns the text to
    print (without a final newline), ``header()`` the CSV header or None."""

    def __init__(self, form):
        self.form = form

    def header(self):
        return _csv_rows([CLASSIFY_COLUMNS]).rstrip("\n") if self.form == "csv" else None

    def result(self, path, predictions):
        """``predictions``: tinynet.model.Prediction, best first."""
        if self.form == "json":
            return json.dumps({"image": str(path), "predictions": [
                _prediction(p.class_index, p.label, p.probability) for p in predictions]})
        if self.form == "csv":
            return _csv_rows([(str(path), rank, p.class_index, p.label, f"{p.probability:.6f}", "")
                              for rank, p in enumerate(predictions, 1)]).rstrip("\n")
        return "\n".join([str(path)] + [f"  {100 * p.probability:6.2f}%  {p.label}" for p in predictions]) + "\n"

    def failure(self, path, message):
        """An image that could not be read: a record in JSON and CSV; None in text (stderr says it)."""
        if self.form == "json":
            return json.dumps({"image": str(path), "error": message})
        if self.form == "csv":
            return _csv_rows([(str(path), "", "", "", "", message)]).rstrip("\n")
        return None


class PerImageWriter:
    """Writes `tinynet eval --per-image` records (tinynet.evaluate's ``on_image``) to the open text file ``out`` as
    ``form`` ("json" or "csv"); ``names[k]`` is class k's name."""

    def __init__(self, out, form, names):
        self.out, self.form, self.names = out, form, names
        if form == "csv":
            self.csv = csv.writer(out, lineterminator="\n")
            self.csv.writerow(PER_IMAGE_COLUMNS)

    def __call__(self, record):
        image, label = str(record["image"]), record["label"]
        if self.form == "json":
            if "error" in record:
                line = {"image": image, "true_index": label, "error": record["error"]}
            else:
                line = {"image": image, "true_index": label, "correct": record["top"][0][0] == label,
                        "predictions": [_prediction(i, self.names[i], p) for i, p in record["top"]]}
            self.out.write(json.dumps(line) + "\n")
        elif "error" in record:
            self.csv.writerow((image, label, "", "", "", "", "", record["error"]))
        else:
            (best, probability), indices = record["top"][0], [i for i, _ in record["top"]]
            self.csv.writerow((image, label, int(best == label), best, self.names[best], f"{probability:.6f}",
                               " ".join(map(str, indices)), ""))
