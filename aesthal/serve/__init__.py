"""A local web page for photos, saliency maps and crops, and its JSON API.

    python -m aesthal.serve --model=runs/quickstart/model.keras

From Python:

    service = PredictionService(aesthal.Predictor("model.keras"))
    server = Server(service, "127.0.0.1", port=0)   # 0: a free port
    print(server.url)
    server.serve_forever()

`service` (the model, one prediction at a time, the upload limits),
`server` (the HTTP routes, the page's files from `static/`), `multipart`
(the form-upload reader) and `cli` (the command line, the only module that
reads flags).
"""

from aesthal.serve.server import Server
from aesthal.serve.service import PredictionService, UploadError

__all__ = ["PredictionService", "Server", "UploadError"]
