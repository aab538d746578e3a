/**
 * "Sage Status" chip: the select column's label, a colour per status and the status message as
 * the tooltip. Rendered with knockout text/attr/css bindings only: no HTML from data.
 */
define([
    'Magento_Ui/js/grid/columns/select',
    'mage/translate'
], function (Select, $t) {
    'use strict';

    var known = ['pending', 'synced', 'skipped', 'failed'];

    return Select.extend({
        defaults: {
            bodyTmpl: 'Ledger_SageSync/grid/cells/sage-status',
            messageIndex: 'sage_status_message'
        },

        getStatus: function (record) {
            var value = record[this.index];

            return known.indexOf(value) === -1 ? 'untracked' : value;
        },

        getLabel: function (record) {
            return this.getStatus(record) === 'untracked' ? $t('Not sent') : this._super(record);
        },

        getChipClass: function (record) {
            return 'ledger-sage-chip--' + this.getStatus(record);
        },

        getTooltip: function (record) {
            return record[this.messageIndex] || this.getLabel(record);
        }
    });
});
