"""A confusion matrix as a PNG (Pillow only): rows true class, columns predicted, each cell shaded by its
share of the row and labelled with its count."""
from PIL import Image, ImageDraw, ImageFont

CELL = 36
MARGIN = 8


def save_confusion_png(confusion, names, path, title="confusion (rows: true, columns: predicted)"):
    """Write ``confusion`` (K x K counts) with class ``names`` to ``path``; returns the path."""
    font = ImageFont.load_default()
    k = len(names)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    names = [f"({i}) {n}" for i, n in enumerate(names)]
    label_w = max(measure.textlength(n, font=font) for n in names) + 2 * MARGIN
    top = 3 * MARGIN + 14  # the title line and the column numbers
    image = Image.new("RGB", (int(label_w + k * CELL + MARGIN), top + k * CELL + MARGIN), "white")
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN), title, fill="black", font=font)
    for i, (name, row) in enumerate(zip(names, confusion)):
        y = top + i * CELL
        draw.text((MARGIN, y + CELL // 2 - 5), name, fill="black", font=font)
        total = max(1, sum(row))
        for j, count in enumerate(row):
            x = label_w + j * CELL
            shade = int(255 * (1 - count / total))
            colour = (shade, shade, 255) if i == j else (255, shade, shade)
            draw.rectangle((x, y, x + CELL - 1, y + CELL - 1), fill=colour, outline=(200, 200, 200))
            draw.text((x + CELL // 2 - 6, y + CELL // 2 - 5), str(count), fill="black" if count / total < 0.6 else "white",
                      font=font)
        draw.text((label_w + i * CELL + CELL // 2 - 3, top - 14), str(i), fill="black", font=font)
    image.save(path, format="PNG")
    return path
