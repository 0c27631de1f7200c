# -*- coding: utf-8 -*-
# References of the DISCA plugin (the module docstring is parsed by pyworkflow;
# cited by the protocols' _citations).
"""
@article{Zeng2023,
  title = {High-throughput cryo-ET structural pattern mining by unsupervised deep iterative subtomogram clustering},
  author = {Zeng, Xiangrui and Kahng, Anson and Xue, Liang and Mahamid, Julia and Chang, Yi-Wei and Xu, Min},
  journal = {Proceedings of the National Academy of Sciences},
  volume = {120},
  number = {15},
  pages = {e2213149120},
  year = {2023},
  doi = {10.1073/pnas.2213149120},
  url = {https://doi.org/10.1073/pnas.2213149120}
}

@article{Xu2017,
  title = {Deep learning-based subdivision approach for large scale macromolecules structure recovery from electron cryo tomograms},
  author = {Xu, Min and Chai, Xiaoqi and Muthakana, Hariank and Liang, Xiaodan and Yang, Ge and Zeev-Ben-Mordehai, Tzviya and Xing, Eric P.},
  journal = {Bioinformatics},
  volume = {33},
  number = {14},
  pages = {i13--i21},
  year = {2017},
  doi = {10.1093/bioinformatics/btx230},
  url = {https://doi.org/10.1093/bioinformatics/btx230}
}

@article{Voss2009,
  title = {DoG Picker and TiltPicker: software tools to facilitate particle selection in single particle electron microscopy},
  author = {Voss, Neil R. and Yoshioka, Craig K. and Radermacher, Michael and Potter, Clinton S. and Carragher, Bridget},
  journal = {Journal of Structural Biology},
  volume = {166},
  number = {2},
  pages = {205--213},
  year = {2009},
  doi = {10.1016/j.jsb.2009.01.004},
  url = {https://doi.org/10.1016/j.jsb.2009.01.004}
}
"""
