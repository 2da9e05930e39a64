"""The experiments' configs (``get_config() -> ml_collections.ConfigDict``), one module each.

=========================  =======================================================================
``sinusoid``               sinusoid regression, paper §6.2 (the README's main job)
``rl_navigation2d``        2D navigation, §6.3
``rl_halfcheetah_vel``     HalfCheetah velocity, §6.3 (the paper's size: a GPU)
``rl_halfcheetah_dir``     HalfCheetah direction (derives from the velocity config)
``classify``               few-shot classification of photos (miniImageNet, CUB, ...), §6.1; Conv-4 at 84 px
``classify_miniimagenet``  Table 2, mini-ImageNet: ResNet-18 at 224 px (Chen et al.'s size)
``classify_cub``           Table 2, CUB (derives from ``classify_miniimagenet``)
``classify_mini2cub``      Table 3, mini-ImageNet -> CUB (derives from ``classify_miniimagenet``)
``classify_crossdomain``   Table 4: mini-ImageNet -> CUB, Cars, Places, Plantae; ResNet-10 at 224 px
``classify_multidomain``   Table 5: leave one domain out (derives from ``classify_crossdomain``)
``classify_glyphs``        the offline glyph benchmark (derives from ``classify``)
``classify_synthetic``     synthetic images, no files (derives from ``classify``)
``NAME_quick``             the smoke-run variant of ``NAME`` (``--quick``)
=========================  =======================================================================

Load one with :func:`omni_jax.config.load_config` (``"sinusoid"``, or a path
to a file of your own that derives from one of these).
"""
