import sys

import six

print(f"python {sys.version_info.major} six {six.__version__} {six.PY3}")
