"""Query images against a gallery folder or an extract.py output: OUT/results.csv and OUT/ranklists/.

python RVSL/search.py --weight W --query Q --gallery G --output OUT --topk K [KEY VALUE ...]
"""

import sys

from rvsl.api.search import run_search, search_arguments
from rvsl.engine import launch

if __name__ == "__main__":
    sys.exit(launch(run_search, __doc__, add_arguments=search_arguments))
