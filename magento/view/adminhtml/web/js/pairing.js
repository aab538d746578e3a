/**
 * The pairing panel: posts the buttons with the admin form key, polls while a code is shown,
 * and reloads the page when the state changes. Server text is only ever set with .text().
 */
define(['jquery', 'Magento_Ui/js/modal/confirm', 'mage/translate'], function ($, confirm) {
    'use strict';

    return function (config, element) {
        var $root = $(element),
            $error = $root.find('[data-role="pairing-error"]'),
            timer = null,
            busy = false;

        function post(url, data) {
            return $.ajax({
                url: url,
                type: 'POST',
                dataType: 'json',
                data: $.extend({form_key: config.formKey, isAjax: true}, data || {})
            });
        }

        function showError(text) {
            $error.text(text || '').prop('hidden', !text);
        }

        function handle(answer) {
            if (!answer.ok) {
                showError(answer.error);
            }
            if (answer.state !== config.state || (answer.ok && answer.state === 'pending' && config.fresh)) {
                window.location.reload();
            } else if (answer.warning) {
                showError(answer.warning);
            }
        }

        function call(url, data) {
            if (busy) {
                return;
            }
            busy = true;
            post(url, data).done(handle).fail(function (xhr) {
                showError($.mage.__('The request failed (HTTP %1).').replace('%1', xhr.status));
            }).always(function () {
                busy = false;
            });
        }

        $root.on('click', '[data-role="pairing-start"]', function () {
            config.fresh = true;
            call(config.startUrl);
        });
        $root.on('click', '[data-role="pairing-check"]', function () {
            call(config.checkUrl);
        });
        $root.on('click', '[data-role="pairing-disconnect"]', function () {
            confirm({
                content: $.mage.__('Disconnect this store from Ledger? Its key is revoked and nothing is published until it is paired again.'),
                actions: {
                    confirm: function () {
                        call(config.disconnectUrl);
                    }
                }
            });
        });

        if (config.state === 'pending') {
            timer = window.setInterval(function () {
                call(config.checkUrl);
            }, config.pollSeconds * 1000);
            $(window).on('beforeunload', function () {
                window.clearInterval(timer);
            });
        }
    };
});
